//! The tracker in a real browser (headless Chromium, through wasm-bindgen-test): storage,
//! the durable queue, its bound, sessions and consent. These tests send nothing (`persist`
//! writes the queue without sending); delivery to a real collector, its failures and
//! retries are covered end to end in tests/e2e.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // a panic in a test is its failure report

use cdp_tracker::{delivery, identity, outbox, storage, transport, Tracker};
use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Nothing listens on port 9 of loopback: every send fails at once and is kept for retry.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";

fn get(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |v, key| {
        Reflect::get(&v, &key.into()).unwrap_or(JsValue::UNDEFINED)
    })
}

fn text(value: &JsValue, path: &str) -> String {
    get(value, path).as_string().unwrap_or_default()
}

fn config(pairs: &[(&str, JsValue)]) -> Object {
    let config = Object::new();
    Reflect::set(&config, &"writeKey".into(), &"test-key".into()).unwrap();
    Reflect::set(&config, &"endpoint".into(), &DEAD_ENDPOINT.into()).unwrap();
    for (key, value) in pairs {
        Reflect::set(&config, &(*key).into(), value).unwrap();
    }
    config
}

fn config_value(pairs: &[(&str, JsValue)]) -> JsValue {
    config(pairs).into()
}

fn clean_slate() {
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    storage.clear().unwrap();
    storage::set_cookie(identity::ANONYMOUS_ID, &s(""), 0.0, &JsValue::UNDEFINED);
}

fn queued() -> Vec<JsValue> {
    let keys: js_sys::Array = storage::keys(outbox::PREFIX, false).into();
    keys.iter()
        .map(|k| JSON::parse(&storage::entry(&k).as_string().unwrap()).unwrap())
        .collect()
}

fn id(value: JsValue) -> Option<String> {
    value.as_string()
}

fn s(text: &str) -> JsValue {
    text.into()
}

fn props(pairs: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (key, value) in pairs {
        Reflect::set(&object, &(*key).into(), value).unwrap();
    }
    object
}

#[wasm_bindgen_test]
fn events_are_stored_with_the_segment_fields_before_any_send() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    tracker.page(s("Home"), JsValue::UNDEFINED);
    tracker.track(s("Product Viewed"), props(&[("price", 59.into())]).into());
    tracker.persist();

    let events = queued();
    assert_eq!(
        events.len(),
        2,
        "both events in the durable queue after a failed send"
    );
    let (page, track) = (&events[0], &events[1]);
    assert_eq!(text(page, "type"), "page");
    assert_eq!(text(page, "name"), "Home");
    assert_eq!(text(track, "event"), "Product Viewed");
    assert_eq!(get(track, "properties.price").as_f64(), Some(59.0));
    let href = web_sys::window().unwrap().location().href().unwrap();
    for event in &events {
        assert_eq!(text(event, "messageId").len(), 36, "a UUID");
        assert_eq!(
            text(event, "anonymousId"),
            tracker.anonymous_id().as_string().unwrap()
        );
        assert!(text(event, "timestamp").ends_with('Z'));
        assert_eq!(text(event, "context.page.url"), href);
        assert_eq!(text(event, "context.library.name"), "edge-cdp-tracker");
        // Read lazily (off the path to ready), and still in every stored event.
        assert!(!text(event, "context.timezone").is_empty(), "a time zone");
        assert!(get(event, "context.sessionId").as_f64().is_some());
        assert!(
            get(event, "sentAt").is_undefined(),
            "sentAt is set at send time only"
        );
    }
    assert_eq!(
        text(page, "properties.url"),
        href,
        "page fields copied to properties"
    );
    assert_ne!(text(page, "messageId"), text(track, "messageId"));
    assert_eq!(
        get(page, "context.sessionId"),
        get(track, "context.sessionId")
    );
}

#[wasm_bindgen_test]
fn replayed_calls_keep_their_time_and_a_kept_call_its_page_and_id() {
    clean_slate();
    // This page came from a campaign; the closed page did not.
    let history = web_sys::window().unwrap().history().unwrap();
    let href = web_sys::window().unwrap().location().href().unwrap();
    history
        .replace_state_with_url(&JsValue::NULL, "", Some("?utm_source=news"))
        .unwrap();
    let tracker = Tracker::new(config_value(&[]));
    history
        .replace_state_with_url(&JsValue::NULL, "", Some(&href))
        .unwrap();
    let closed_page = props(&[
        ("url", s("https://shop.example/cart")),
        ("path", s("/cart")),
    ]);
    let kept = props(&[("p", closed_page.into()), ("i", s("1764480000000-k3pt"))]);
    tracker.call_time(Some(1_764_480_000_000.0), kept.into());
    tracker.track(s("Cart Viewed"), JsValue::UNDEFINED);
    tracker.page(JsValue::UNDEFINED, JsValue::UNDEFINED);
    tracker.call_time(Some(1_764_480_000_500.0), JsValue::UNDEFINED);
    tracker.track(s("Queued Here"), JsValue::UNDEFINED);
    tracker.call_time(None, JsValue::UNDEFINED);
    tracker.track(s("Now"), JsValue::UNDEFINED);
    tracker.persist();

    let events = queued();
    assert_eq!(events.len(), 4);
    let (kept, kept_page, here, now) = (&events[0], &events[1], &events[2], &events[3]);
    assert_eq!(text(kept, "timestamp"), "2025-11-30T05:20:00.000Z");
    assert_eq!(text(kept, "messageId"), "1764480000000-k3pt", "the kept id");
    assert_eq!(text(kept, "context.page.path"), "/cart", "the kept page");
    assert_eq!(
        text(kept_page, "properties.url"),
        "https://shop.example/cart"
    );
    assert!(
        get(kept, "context.campaign").is_undefined(),
        "not this page's campaign"
    );
    assert_eq!(text(here, "context.campaign.source"), "news");
    assert_eq!(text(here, "timestamp"), "2025-11-30T05:20:00.500Z");
    assert_eq!(
        text(here, "context.page.url"),
        href,
        "a call queued here: this page"
    );
    assert_eq!(text(here, "messageId").len(), 36, "and a new id");
    assert_eq!(text(now, "context.page.url"), href);
    assert!(text(now, "timestamp") > text(here, "timestamp"));
}

#[wasm_bindgen_test]
fn an_object_the_page_reuses_after_a_call_does_not_change_the_recorded_event() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    let properties = props(&[("step", 1.into())]);
    tracker.track(s("Checkout Step Viewed"), properties.clone().into());
    Reflect::set(&properties, &"step".into(), &2.into()).unwrap();
    tracker.track(s("Checkout Step Viewed"), properties.into());
    let traits = props(&[("plan", s("free"))]);
    tracker.group(s("acme"), traits.clone().into());
    Reflect::set(&traits, &"plan".into(), &s("pro")).unwrap();
    // The identity's traits change with the next identify; the earlier event's do not.
    tracker.identify(s("user-1"), props(&[("plan", s("free"))]).into());
    tracker.identify(JsValue::UNDEFINED, props(&[("plan", s("pro"))]).into());
    // An object that is not plain goes as it is, its own toJSON kept.
    let dated = js_sys::Date::new(&1_764_480_000_000.0.into());
    tracker.track(s("Dated"), dated.into());
    tracker.persist();

    let events = queued();
    assert_eq!(get(&events[0], "properties.step").as_f64(), Some(1.0));
    assert_eq!(get(&events[1], "properties.step").as_f64(), Some(2.0));
    assert_eq!(text(&events[2], "traits.plan"), "free");
    assert_eq!(
        text(&events[3], "traits.plan"),
        "free",
        "identify: traits then"
    );
    assert_eq!(text(&events[4], "traits.plan"), "pro");
    assert_eq!(text(&events[5], "properties"), "2025-11-30T05:20:00.000Z");
}

#[wasm_bindgen_test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    tracker_with_queue(3, &["e1", "e2", "e3", "e4", "e5"]);
    let names: Vec<String> = queued().iter().map(|e| text(e, "event")).collect();
    assert_eq!(names, ["e3", "e4", "e5"]);
    assert_eq!(id(storage::get(delivery::DROPPED)).as_deref(), Some("2"));
}

/// A tracker on a clean slate with a queue of `max_queue` entries, which has tracked and
/// stored events named `names`.
fn tracker_with_queue(max_queue: i32, names: &[&str]) -> Tracker {
    clean_slate();
    let tracker = Tracker::new(config_value(&[("maxQueue", max_queue.into())]));
    for name in names {
        tracker.track(s(name), JsValue::UNDEFINED);
    }
    tracker.persist();
    tracker
}

/// The anonymous id a tracker started now (as on a new page) has.
fn fresh_visitor_id() -> String {
    id(Tracker::new(config_value(&[])).anonymous_id()).unwrap()
}

#[wasm_bindgen_test]
fn anonymous_id_survives_a_reload_from_either_copy() {
    clean_slate();
    let first = fresh_visitor_id();
    assert_eq!(fresh_visitor_id(), first);
    assert_eq!(
        id(storage::cookie(identity::ANONYMOUS_ID)).as_deref(),
        Some(first.as_str())
    );

    // Cookie gone (a browser capping script cookies), localStorage kept: same visitor.
    storage::set_cookie(identity::ANONYMOUS_ID, &s(""), 0.0, &JsValue::UNDEFINED);
    assert_eq!(fresh_visitor_id(), first);
    assert_eq!(
        id(storage::cookie(identity::ANONYMOUS_ID)).as_deref(),
        Some(first.as_str()),
        "cookie written back"
    );

    // localStorage gone, cookie kept: same visitor.
    storage::remove(identity::ANONYMOUS_ID);
    assert_eq!(fresh_visitor_id(), first);

    clean_slate();
    assert_ne!(fresh_visitor_id(), first);
}

#[wasm_bindgen_test]
fn identify_keeps_user_and_traits_and_reset_forgets_them() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    let anonymous = tracker.anonymous_id().as_string().unwrap();
    tracker.identify(s("user-1"), props(&[("plan", "pro".into())]).into());
    tracker.identify(
        JsValue::UNDEFINED,
        props(&[("email", "a@b.c".into())]).into(),
    );
    assert_eq!(tracker.user_id().as_string().as_deref(), Some("user-1"));
    let again = Tracker::new(config_value(&[]));
    assert_eq!(
        again.user_id().as_string().as_deref(),
        Some("user-1"),
        "user id survives a reload"
    );
    tracker.track(s("After Login"), JsValue::UNDEFINED);
    tracker.persist();
    let events = queued();
    let last_identify = &events[1];
    assert_eq!(text(last_identify, "traits.plan"), "pro");
    assert_eq!(text(last_identify, "traits.email"), "a@b.c");
    assert_eq!(text(&events[2], "userId"), "user-1");

    tracker.reset();
    assert_ne!(tracker.anonymous_id().as_string().unwrap(), anonymous);
    assert!(tracker.user_id().is_undefined());
    assert_eq!(id(storage::get(identity::USER_ID)), None);
    assert_eq!(id(storage::get(identity::TRAITS)), None);
}

#[wasm_bindgen_test]
fn with_consent_required_nothing_is_stored_until_granted() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[("consent", "required".into())]));
    tracker.page(JsValue::UNDEFINED, JsValue::UNDEFINED);
    tracker.track(s("Before Consent"), JsValue::UNDEFINED);
    tracker.persist();
    assert!(queued().is_empty(), "nothing queued");
    assert_eq!(
        id(storage::cookie(identity::ANONYMOUS_ID)),
        None,
        "no cookie"
    );
    assert_eq!(
        id(storage::get(identity::ANONYMOUS_ID)),
        None,
        "no stored id"
    );

    tracker.consent(JsValue::from(props(&[
        ("analytics", true.into()),
        ("marketing", false.into()),
    ])));
    tracker.persist();
    let events = queued();
    assert_eq!(events.len(), 2, "held events stored once consent is given");
    assert_eq!(
        get(&events[1], "context.consent.categoryPreferences.analytics"),
        JsValue::TRUE
    );
    assert_eq!(
        get(&events[1], "context.consent.categoryPreferences.marketing"),
        JsValue::FALSE
    );
    assert_eq!(
        id(storage::cookie(identity::ANONYMOUS_ID)).as_deref(),
        tracker.anonymous_id().as_string().as_deref()
    );

    // What other tabs or the loader stored by then goes too.
    storage::set("cdp_pre", &s(r#"[{"c":["track","Kept"],"t":1}]"#));
    storage::set("cdp_drop", &s("3"));
    storage::set("site_own", &s("kept"));
    tracker.consent(props(&[("analytics", false.into())]).into());
    assert!(queued().is_empty(), "withdrawal empties the queue");
    assert_eq!(
        id(storage::cookie(identity::ANONYMOUS_ID)),
        None,
        "and forgets the visitor"
    );
    let storage = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    let mut left: Vec<String> = (0..storage.length().unwrap())
        .filter_map(|i| storage.key(i).unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["cdp_consent", "site_own"],
        "only the choice, and the site's own"
    );
    tracker.track(s("After Withdrawal"), JsValue::UNDEFINED);
    tracker.persist();
    assert!(queued().is_empty());
}

#[wasm_bindgen_test]
fn a_stored_choice_applies_on_the_next_page() {
    clean_slate();
    Tracker::new(config_value(&[("consent", "required".into())]))
        .consent(props(&[("analytics", true.into())]).into());
    let next_page = Tracker::new(config_value(&[("consent", "required".into())]));
    next_page.track(s("Remembered"), JsValue::UNDEFINED);
    next_page.persist();
    assert_eq!(queued().len(), 1);
}

#[wasm_bindgen_test]
fn marked_elements_send_their_event_with_properties() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    let document = web_sys::window().unwrap().document().unwrap();
    let button = document.create_element("button").unwrap();
    button
        .set_attribute("data-cdp-event", "Product Added")
        .unwrap();
    button.set_attribute("data-cdp-product-id", "007").unwrap();
    button.set_attribute("data-cdp-price", "59.5").unwrap();
    let inner = document.create_element("span").unwrap();
    button.append_child(&inner).unwrap();
    document.body().unwrap().append_child(&button).unwrap();
    web_sys::HtmlElement::from(JsValue::from(inner)).click();
    // A site's mistake: a mark without a name records nothing.
    let unnamed = document.create_element("button").unwrap();
    unnamed.set_attribute("data-cdp-event", "").unwrap();
    document.body().unwrap().append_child(&unnamed).unwrap();
    web_sys::HtmlElement::from(JsValue::from(unnamed.clone())).click();
    unnamed.remove();
    tracker.persist();
    // Every tracker on this test page listens; each records the click once.
    let added: Vec<JsValue> = queued()
        .into_iter()
        .filter(|e| text(e, "event") == "Product Added")
        .collect();
    assert!(!added.is_empty());
    assert_eq!(
        queued().len(),
        added.len(),
        "nothing for the mark without a name"
    );
    assert_eq!(
        text(&added[0], "properties.product_id"),
        "007",
        "ids stay strings"
    );
    assert_eq!(
        get(&added[0], "properties.price").as_f64(),
        Some(59.5),
        "prices become numbers"
    );
    button.remove();
}

#[wasm_bindgen_test]
fn a_batch_body_stamps_each_stored_event_and_reports_drops() {
    let events = js_sys::Array::of2(&s(r#"{"type":"page"}"#), &s(r#"{"type":"track","n":"}"}"#));
    let body = transport::body(&events, &s("k\"1"), 0).as_string().unwrap();
    let parsed = JSON::parse(&body).unwrap();
    let sent_at = text(&parsed, "sentAt");
    assert!(sent_at.ends_with('Z'), "{body}");
    assert_eq!(text(&parsed, "writeKey"), "k\"1");
    assert_eq!(text(&parsed, "batch.0.type"), "page");
    assert_eq!(
        text(&parsed, "batch.1.n"),
        "}",
        "a brace inside a string is kept"
    );
    assert_eq!(text(&parsed, "batch.1.sentAt"), sent_at);
    assert!(get(&parsed, "dropped").is_undefined());
    let reported = transport::body(&events, &JsValue::UNDEFINED, 42)
        .as_string()
        .unwrap();
    let reported = JSON::parse(&reported).unwrap();
    assert_eq!(get(&reported, "dropped").as_f64(), Some(42.0));
    assert_eq!(text(&reported, "writeKey"), "");
}

#[wasm_bindgen_test]
fn entries_being_sent_are_not_listed_again_until_answered() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    tracker.track(s("One"), JsValue::UNDEFINED);
    tracker.track(s("Two"), JsValue::UNDEFINED);
    tracker.persist();
    let all = storage::keys(outbox::PREFIX, false);
    let first = js_sys::Array::of1(&js_sys::Array::from(&all).get(0));
    storage::hold_entries(&first, 60_000.0);
    assert_eq!(
        js_sys::Array::from(&storage::keys(outbox::PREFIX, true)).length(),
        1
    );
    storage::release_entries(&first, false);
    assert_eq!(
        js_sys::Array::from(&storage::keys(outbox::PREFIX, true)).length(),
        2,
        "kept for a retry"
    );
    storage::hold_entries(&first, 60_000.0);
    storage::release_entries(&first, true);
    assert_eq!(queued().len(), 1, "delivered: gone from storage");
    assert_eq!(text(&queued()[0], "event"), "Two");

    // Marked by another tab of the site: skipped until the mark expires.
    let two = js_sys::Array::from(&storage::keys(outbox::PREFIX, false)).get(0);
    let mark = format!("cdp_f:{}", two.as_string().unwrap());
    storage::set(&mark, &(js_sys::Date::now() + 10_000.0).into());
    let listed = storage::keys(outbox::PREFIX, true);
    assert_eq!(js_sys::Array::from(&listed).length(), 0);
    assert_eq!(storage::held_among(&listed), 1);
    storage::set(&mark, &(js_sys::Date::now() - 1.0).into());
    assert_eq!(
        js_sys::Array::from(&storage::keys(outbox::PREFIX, true)).length(),
        1,
        "expired"
    );
    assert_eq!(
        id(storage::get(&mark)),
        None,
        "and the stale mark cleaned up"
    );
}

#[wasm_bindgen_test]
fn a_delivered_entry_leaves_storage_before_its_mark() {
    // Another tab's copy of localStorage lags: had the mark gone first, a tab that saw that
    // change but not yet the next would send the entry again.
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    tracker.track(s("Delivered"), JsValue::UNDEFINED);
    tracker.persist();
    let keys = storage::keys(outbox::PREFIX, false);
    let key = js_sys::Array::from(&keys).get(0).as_string().unwrap();
    storage::hold_entries(&keys, 60_000.0);
    let watch = js_sys::Function::new_no_args(
        "var p = Storage.prototype, remove = p.removeItem, seen = [];
         p.removeItem = function (k) { seen.push(k); return remove.call(this, k); };
         return function () { p.removeItem = remove; return seen; };",
    );
    let stop: js_sys::Function = watch.call0(&JsValue::NULL).unwrap().into();
    storage::release_entries(&keys, true);
    let removed: Vec<String> = js_sys::Array::from(&stop.call0(&JsValue::NULL).unwrap())
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    assert_eq!(removed, [key.clone(), format!("cdp_f:{key}")]);
}

#[wasm_bindgen_test]
fn a_withdrawn_visitor_is_forgotten_in_memory_too() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    tracker.identify(s("user-9"), props(&[("plan", "pro".into())]).into());
    let before = id(tracker.anonymous_id());
    tracker.consent(props(&[("analytics", false.into())]).into());
    tracker.consent(props(&[("analytics", true.into())]).into());
    assert_ne!(
        id(tracker.anonymous_id()),
        before,
        "a new visitor after withdrawal"
    );
    assert!(tracker.user_id().is_undefined());
    assert_eq!(
        id(storage::get(identity::USER_ID)),
        None,
        "the old user is not written back"
    );
    assert_eq!(id(storage::get(identity::TRAITS)), None);
}

#[wasm_bindgen_test]
fn the_size_limit_counts_the_sent_at_added_when_sending() {
    clean_slate();
    let tracker = Tracker::new(config_value(&[]));
    let filler = |n: usize| props(&[("filler", "x".repeat(n).into())]).into();
    tracker.track(s("Sized"), filler(0));
    tracker.persist();
    let base = JSON::stringify(&queued()[0]).unwrap().length() as usize;
    clean_slate();
    let limit = outbox::MAX_EVENT_BYTES - outbox::SENT_AT_BYTES;
    let tracker = Tracker::new(config_value(&[]));
    tracker.track(s("Sized"), filler(limit - base));
    tracker.track(s("Sized"), filler(limit - base + 1));
    tracker.persist();
    let kept = queued();
    assert_eq!(
        kept.len(),
        1,
        "the event that would pass 32 KB once stamped is dropped"
    );
    assert_eq!(JSON::stringify(&kept[0]).unwrap().length() as usize, limit);
    assert_eq!(
        id(storage::get(delivery::DROPPED)).as_deref(),
        Some("1"),
        "and counted"
    );
}

#[wasm_bindgen_test]
fn entries_being_sent_are_never_evicted_nor_counted_as_dropped() {
    let tracker = tracker_with_queue(3, &["e1", "e2", "e3"]);
    // The two oldest are in flight (their request may still deliver them).
    let keys = js_sys::Array::from(&storage::keys(outbox::PREFIX, false));
    let sending = js_sys::Array::of2(&keys.get(0), &keys.get(1));
    storage::hold_entries(&sending, 60_000.0);
    for name in ["e4", "e5"] {
        tracker.track(s(name), JsValue::UNDEFINED);
    }
    tracker.persist();
    let names: Vec<String> = queued().iter().map(|e| text(e, "event")).collect();
    assert_eq!(
        names,
        ["e1", "e2", "e5"],
        "the bound kept without touching e1, e2"
    );
    assert_eq!(id(storage::get(delivery::DROPPED)).as_deref(), Some("2"));
    storage::release_entries(&sending, false);
}

#[wasm_bindgen_test]
fn the_dropped_count_keeps_what_other_tabs_added() {
    let tracker = tracker_with_queue(1, &["e1", "e2", "e3"]);
    assert_eq!(id(storage::get(delivery::DROPPED)).as_deref(), Some("2"));
    storage::set(delivery::DROPPED, &s("5")); // another tab dropped three meanwhile
    tracker.track(s("e4"), JsValue::UNDEFINED);
    tracker.persist();
    assert_eq!(id(storage::get(delivery::DROPPED)).as_deref(), Some("6"));
}

#[wasm_bindgen_test]
fn a_corrupt_queue_entry_is_left_out_of_its_batch() {
    let events = js_sys::Array::of3(&s(r#"{"type":"page"}"#), &s("garbage}"), &s("null"));
    let body = transport::body(&events, &s("k"), 0).as_string().unwrap();
    let parsed = JSON::parse(&body).unwrap();
    assert_eq!(
        js_sys::Array::from(&get(&parsed, "batch")).length(),
        1,
        "{body}"
    );
    assert_eq!(text(&parsed, "batch.0.type"), "page");
}

#[wasm_bindgen_test]
fn a_malformed_cookie_does_not_stop_the_tracker() {
    clean_slate();
    let document: web_sys::HtmlDocument = web_sys::window()
        .unwrap()
        .document()
        .unwrap()
        .dyn_into()
        .unwrap();
    // Not valid percent-encoding: decodeURIComponent throws on it.
    document.set_cookie("cdp_aid=%E0%A4%A; Path=/").unwrap();
    storage::set(identity::ANONYMOUS_ID, &s("kept-in-storage"));
    assert_eq!(id(storage::cookie(identity::ANONYMOUS_ID)), None);
    assert_eq!(
        fresh_visitor_id(),
        "kept-in-storage",
        "the stored copy is used"
    );
}
