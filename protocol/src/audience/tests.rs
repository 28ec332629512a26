use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;

const S: i64 = 1_000;
const H: i64 = 3_600_000;
const T0: i64 = 1_800_000_000_000;

fn def(v: Value) -> Definition {
    parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

struct Ev {
    r#type: &'static str,
    name: Option<String>,
    t: i64,
    body: Value,
}

fn track(name: &str, t: i64, properties: Value) -> Ev {
    Ev {
        r#type: "track",
        name: Some(name.into()),
        t,
        body: json!({ "properties": properties }),
    }
}

fn facts(events: &[Ev]) -> Vec<Fact<'_>> {
    events
        .iter()
        .map(|e| Fact {
            r#type: e.r#type,
            name: e.name.as_deref(),
            timestamp: e.t,
            body: &e.body,
        })
        .collect()
}

fn verdict(d: &Definition, events: &[Ev], profile: &Value, now: i64) -> Verdict {
    evaluate_all(std::slice::from_ref(d), &facts(events), profile, now)[&d.key]
}

fn abandoned_cart() -> Definition {
    def(
        json!({"key": "abandoned", "name": "Abandoned cart", "where":
        {"did": {"event": "Product Added",
                 "thenDidNot": {"event": "Order Completed", "within": "1h"}}}}),
    )
}

#[test]
fn the_abandoned_cart_enters_on_time_leaves_on_order_and_enters_again() {
    let d = abandoned_cart();
    let none = json!({});
    let mut events = vec![track("Product Added", T0, json!({}))];
    let v = verdict(&d, &events, &none, T0 + S);
    assert_eq!(
        v,
        Verdict {
            member: false,
            next_change: Some(T0 + H)
        }
    );
    // At the instant, with no new event.
    assert!(verdict(&d, &events, &none, T0 + H).member);
    assert!(!verdict(&d, &events, &none, T0 + H - 1).member);
    // An order leaves it.
    events.push(track("Order Completed", T0 + 2 * H, json!({})));
    assert!(!verdict(&d, &events, &none, T0 + 2 * H).member);
    // Adding again enters once more an hour after the second add.
    events.push(track("Product Added", T0 + 3 * H, json!({})));
    let v = verdict(&d, &events, &none, T0 + 3 * H);
    assert_eq!(
        v,
        Verdict {
            member: false,
            next_change: Some(T0 + 4 * H)
        }
    );
    assert!(verdict(&d, &events, &none, T0 + 4 * H).member);
}

#[test]
fn a_window_that_runs_out_ends_membership_at_its_instant() {
    let d = def(json!({"key": "recent", "where": {"did": {"event": "Viewed", "within": "10s"}}}));
    let events = [track("Viewed", T0, json!({}))];
    let v = verdict(&d, &events, &json!({}), T0 + 2 * S);
    assert_eq!(
        v,
        Verdict {
            member: true,
            next_change: Some(T0 + 10 * S)
        }
    );
    assert!(!verdict(&d, &events, &json!({}), T0 + 10 * S).member);
    // A late event counts by its own time: one from 20 s ago does not.
    let late = [track("Viewed", T0 - 20 * S, json!({}))];
    assert!(!verdict(&d, &late, &json!({}), T0).member);
}

#[test]
fn counts_filters_and_aggregates() {
    let d = def(
        json!({"key": "big_spender", "where": {"did": {"event": "Order Completed",
        "where": ["properties.total>10"], "atLeast": 2, "within": "30d",
        "sum": "properties.total", "op": ">", "value": 200}}}),
    );
    let mut events = vec![
        track("Order Completed", T0, json!({"total": 150})),
        track("Order Completed", T0 + S, json!({"total": 5})),
    ];
    assert!(
        !verdict(&d, &events, &json!({}), T0 + H).member,
        "the 5 is filtered out"
    );
    events.push(track("Order Completed", T0 + 2 * S, json!({"total": 60})));
    assert!(verdict(&d, &events, &json!({}), T0 + H).member);
    let avg = def(
        json!({"key": "a", "where": {"did": {"event": "Order Completed",
        "aggregate": {"avg": "properties.total", "op": ">=", "value": 71}}}}),
    );
    assert!(verdict(&avg, &events, &json!({}), T0 + H).member);
    let exactly =
        def(json!({"key": "e", "where": {"did": {"event": "Order Completed", "exactly": 3}}}));
    assert!(verdict(&exactly, &events, &json!({}), T0 + H).member);
}

#[test]
fn did_not_have_and_groups_combine() {
    let d = def(
        json!({"key": "cart_no_buy", "name": "Added to cart, no order", "group": "shop",
        "personalize": true,
        "where": {"all": [
            {"did": {"event": "Product Added", "within": "1h"}},
            {"didNot": {"event": "Order Completed", "within": "1h"}},
            {"have": "computed.totalRevenue<500"}]}}),
    );
    assert_eq!((d.group.as_deref(), d.personalize), (Some("shop"), true));
    let poor = json!({"computed": {"totalRevenue": 20}});
    let rich = json!({"computed": {"totalRevenue": 900}});
    let events = [track("Product Added", T0, json!({}))];
    let v = verdict(&d, &events, &poor, T0 + S);
    assert_eq!(
        v,
        Verdict {
            member: true,
            next_change: Some(T0 + H)
        }
    );
    assert!(!verdict(&d, &events, &rich, T0 + S).member);
    let not = def(
        json!({"key": "n", "where": {"not": {"any": [{"have": "traits.vip=true"}, {"did": {"type": "page"}}]}}}),
    );
    assert!(verdict(&not, &[], &json!({"traits": {"vip": false}}), T0).member);
}

#[test]
fn in_audience_follows_the_other_audience_and_cycles_are_refused() {
    let base = def(json!({"key": "base", "where": {"did": {"event": "A", "within": "10s"}}}));
    let on_top = def(json!({"key": "on_top", "where": {"inAudience": "base"}}));
    let defs = [on_top.clone(), base.clone()];
    let ev = [track("A", T0, json!({}))];
    let v = evaluate_all(&defs, &facts(&ev), &json!({}), T0 + S);
    assert_eq!(
        v["on_top"],
        Verdict {
            member: true,
            next_change: Some(T0 + 10 * S)
        }
    );
    let a = def(json!({"key": "a", "where": {"inAudience": "b"}}));
    let b = def(json!({"key": "b", "where": {"not": {"inAudience": "a"}}}));
    let e = ordered(&[a.clone(), b]).unwrap_err();
    assert!(e.message.contains("cycle"), "{e}");
    let e = ordered(&[a]).unwrap_err();
    assert!(e.message.contains("no audience"), "{e}");
}

#[test]
fn bad_definitions_are_refused_naming_the_place() {
    let deep = (0..8).fold(json!({"have": "traits.a"}), |c, _| json!({"not": c}));
    let many: Vec<Value> = (0..40).map(|_| json!({"have": "traits.a"})).collect();
    for (bad, at, says) in [
        (
            json!({"key": "Bad Key", "where": {"have": "traits.a"}}),
            "key",
            "a-z",
        ),
        (json!({"key": "k"}), "where", "give the condition"),
        (
            json!({"key": "k", "where": {"did": {"event": "A", "within": "3 days"}}}),
            "where.did.within",
            "duration",
        ),
        (
            json!({"key": "k", "where": {"did": {"event": "A", "within": "0s"}}}),
            "where.did.within",
            "duration",
        ),
        (
            json!({"key": "k", "where": {"have": "computed.lifetimeValue>5"}}),
            "where.have",
            "no computed trait",
        ),
        (
            json!({"key": "k", "where": {"have": "traits.a=>5"}}),
            "where.have",
            "unknown operator",
        ),
        (
            json!({"key": "k", "where": {"did": {"event": "A", "sum": "properties.t", "op": "=>", "value": 1}}}),
            "where.did.op",
            "one of",
        ),
        (
            json!({"key": "k", "where": {"all": [{"did": {"event": "A"}}, {"sometimes": {}}]}}),
            "where.all[1].sometimes",
            "unknown condition",
        ),
        (
            json!({"key": "k", "where": {"did": {"event": "A", "where": ["price>3"]}}}),
            "where.did.where[0]",
            "no field group",
        ),
        (
            json!({"key": "k", "where": {"didNot": {"event": "A", "atLeast": 2}}}),
            "where.didNot",
            "at most 0",
        ),
        (
            json!({"key": "k", "where": {"did": {"event": "A", "thenDidNot": {"event": "B"}}}}),
            "where.did.thenDidNot",
            "within",
        ),
        (
            json!({"key": "k", "where": {"did": {"type": "click"}}}),
            "where.did.type",
            "one of",
        ),
        (
            json!({"key": "k", "where": {"did": {"event": "A", "between": ["2026-12-01T00:00:00Z", "2026-11-01T00:00:00Z"]}}}),
            "where.did.between",
            "before",
        ),
        (
            json!({"key": "k", "colour": "red", "where": {"have": "traits.a"}}),
            "colour",
            "unknown field",
        ),
        (
            json!({"key": "k", "where": deep}),
            "where.not.not.not.not.not.not.not",
            "too deep",
        ),
        (
            json!({"key": "k", "where": {"any": many}}),
            "where.any[31]",
            "too many",
        ),
    ] {
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.at, at, "{bad}: {e}");
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}

#[test]
fn durations_read_as_people_write_them() {
    assert_eq!(definition::parse_duration("30s"), Some(30 * S));
    assert_eq!(definition::parse_duration("15m"), Some(15 * 60 * S));
    assert_eq!(definition::parse_duration("30d"), Some(30 * 24 * H));
    for bad in ["", "s", "1", "1y", "-1h", "1.5h", "0m"] {
        assert_eq!(definition::parse_duration(bad), None, "{bad}");
    }
}

/// Events of a random stream: (kind 0..3, total 0..100, time offset in seconds).
fn stream() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec((0..3u8, 0..100u8, 0..120u8), 0..12)
}

fn name_of(kind: u8) -> &'static str {
    ["Product Added", "Order Completed", "Viewed"][usize::from(kind) % 3]
}

/// A random definition over the three names, with windows of seconds.
fn definition() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        (0..3u8, 1..40u8, 1..3u8).prop_map(|(k, w, n)| json!({"did": {"event": name_of(k),
            "within": format!("{w}s"), "atLeast": n}})),
        (0..3u8, 1..40u8)
            .prop_map(|(k, w)| json!({"didNot": {"event": name_of(k), "within": format!("{w}s")}})),
        (0..3u8, 0..3u8, 1..40u8).prop_map(|(a, b, w)| json!({"did": {"event": name_of(a),
            "thenDidNot": {"event": name_of(b), "within": format!("{w}s")}}})),
        (0..3u8, 0..3u8, 1..40u8).prop_map(|(a, b, w)| json!({"did": {"event": name_of(a),
            "thenDid": {"event": name_of(b), "within": format!("{w}s")}}})),
        (0..3u8, 1..60u8, 0..150u16).prop_map(|(k, w, v)| json!({"did": {"event": name_of(k),
            "within": format!("{w}s"), "sum": "properties.total", "op": ">", "value": v}})),
        (0..3u8, 1..60u8).prop_map(|(k, w)| json!({"did": {"event": name_of(k),
            "within": format!("{w}s"), "atMost": 1}})),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..3).prop_map(|c| json!({"all": c})),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(|c| json!({"any": c})),
            inner.prop_map(|c| json!({"not": c})),
        ]
    })
    .prop_map(|c| json!({"key": "p", "where": c}))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Membership kept the way the profile keeps it (evaluated when events arrive, in any
    /// order, duplicated, late, from merged profiles; and again at each verdict's next
    /// change) equals a full evaluation over the events held, at every instant.
    #[test]
    fn kept_membership_equals_a_full_evaluation_at_every_instant(
        definition in definition(),
        events in stream(),
        arrivals in proptest::collection::vec((0..150u8, any::<bool>()), 0..12),
    ) {
        let d = def(definition);
        let profile = json!({});
        let all: Vec<Ev> = events.iter().enumerate().map(|(i, (k, total, t))| {
            let mut e = track(name_of(*k), T0 + i64::from(*t) * S, json!({"total": total}));
            e.body["messageId"] = json!(i);
            e
        }).collect();
        // Each event arrives at some instant (possibly long after its time: late), some twice.
        let mut schedule: Vec<(i64, usize)> = Vec::new();
        for (i, _) in all.iter().enumerate() {
            let (at, twice) = arrivals.get(i).copied().unwrap_or((0, false));
            let at = all[i].t.max(T0) + i64::from(at) * S;
            schedule.push((at, i));
            if twice { schedule.push((at + 7 * S, i)); }
        }
        schedule.sort();
        let mut held: BTreeMap<usize, &Ev> = BTreeMap::new();
        let run = |held: &BTreeMap<usize, &Ev>, now: i64| {
            let facts: Vec<Fact<'_>> = held.values().map(|e| Fact {
                r#type: e.r#type, name: e.name.as_deref(), timestamp: e.t, body: &e.body,
            }).collect();
            evaluate_all(std::slice::from_ref(&d), &facts, &profile, now)["p"]
        };
        let mut kept = run(&held, T0);
        let mut probes: Vec<i64> = (0..400).map(|s| T0 + s * S / 2).collect();
        probes.extend(schedule.iter().map(|(at, _)| *at));
        probes.sort_unstable();
        let mut arriving = schedule.iter().peekable();
        for now in probes {
            // Alarms and arrivals due by now, in time order; an alarm runs at its instant.
            loop {
                let alarm = kept.next_change.filter(|at| *at <= now);
                let arrival = arriving.peek().copied().filter(|(at, _)| *at <= now);
                match (alarm, arrival) {
                    (Some(due), Some((at, _))) if due < *at => kept = run(&held, due),
                    (Some(due), None) => kept = run(&held, due),
                    (_, Some((at, i))) => {
                        held.insert(*i, &all[*i]);
                        kept = run(&held, *at);
                        arriving.next();
                    }
                    (None, None) => break,
                }
            }
            let fresh = run(&held, now);
            prop_assert_eq!(kept.member, fresh.member, "at {}", (now - T0) / 100);
        }
    }
}
